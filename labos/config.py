"""One settings object for the whole system: defaults < config file < LABOS_* environment."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from labos.errors import ConfigError


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "labos"


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "labos"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the file named by LABOS_CONFIG (or ./labos.toml) under a [labos] table or at top level."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        path = os.environ.get("LABOS_CONFIG")
        self.path = Path(path) if path else Path("labos.toml")
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            try:
                raw = tomllib.loads(self.path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {self.path} is not valid TOML: {exc}") from None
            self.data = raw.get("labos", raw)
        elif path:
            raise ConfigError(f"LABOS_CONFIG points to {path}, which does not exist")

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABOS_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="where labos keeps its state")
    cache_dir: Path = Field(default_factory=_default_cache, description="trained models, fetched data")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in home")
    data_dir: Path | None = Field(default=None, description="public datasets (LABOS_DATA_DIR)")
    lab_config: Path | None = Field(default=None, description="lab configuration file")
    success_threshold: float = Field(default=0.5, gt=0, le=1, description="target weight fraction")
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'labos.sqlite'}"

    @property
    def datasets(self) -> Path:
        """Folder of public datasets: LABOS_DATA_DIR, else the user's data folder."""
        return self.data_dir if self.data_dir else self.home / "data"

    def dataset(self, relative: str) -> Path:
        """Path of a dataset file (e.g. 'thermo/mp_materials_summary.csv'); may not exist."""
        return self.datasets / relative


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
