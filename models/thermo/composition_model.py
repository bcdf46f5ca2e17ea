"""Composition-only formation-energy model (GNoME's compositional track; ElemNet/Roost-like).

Input: the element-fraction vector (ElemNet, Jha et al., Sci. Rep. 8, 17593, 2018) joined with
fraction-weighted mean, spread, min and max of tabulated element properties (Magpie-style,
Ward et al., npj Comput. Mater. 2, 16028, 2016; properties from pymatgen's periodic table).
Model: a small MLP; an ensemble of ``n_models`` independently initialised members gives the
prediction (mean) and its uncertainty (standard deviation; Lakshminarayanan et al., 2017).
Used only for phases no source covers; every prediction is flagged as an estimate.

Trained weights are cached under ``get_settings().cache_dir / "thermo"`` keyed by the checksum
of the training data and the configuration, so a model trains once per machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from labos.config import get_settings
from labos.errors import DataMissingError

MAX_Z = 94  # H .. Pu
PROPERTIES = (
    "Z",
    "X",
    "row",
    "group",
    "atomic_radius",
    "atomic_mass",
    "mendeleev_no",
    "molar_volume",
    "max_oxidation_state",
    "min_oxidation_state",
)


@lru_cache(maxsize=1)
def element_table() -> tuple[list[str], np.ndarray]:
    """Symbols H..Pu and a (n_elements, n_properties) array of standardised properties."""
    from pymatgen.core import Element

    symbols = [Element.from_Z(z).symbol for z in range(1, MAX_Z + 1)]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in symbols:
            el = Element(s)
            row = []
            for p in PROPERTIES:
                try:
                    v = getattr(el, p)
                    v = float(v) if v is not None else math.nan
                except Exception:
                    v = math.nan
                row.append(v)
            rows.append(row)
    arr = np.array(rows, dtype=float)
    mean = np.nanmean(arr, axis=0)
    std = np.nanstd(arr, axis=0) + 1e-9
    arr = np.where(np.isnan(arr), mean, arr)
    return symbols, (arr - mean) / std


def featurize(formulas: list[str]) -> np.ndarray:
    """Features of each formula: element fractions + weighted property statistics."""
    from pymatgen.core import Composition

    symbols, props = element_table()
    index = {s: i for i, s in enumerate(symbols)}
    n_p = props.shape[1]
    out = np.zeros((len(formulas), len(symbols) + 4 * n_p), dtype=np.float32)
    for k, f in enumerate(formulas):
        frac = Composition(f).fractional_composition.get_el_amt_dict()
        idx = []
        w = []
        for el, x in frac.items():
            if el not in index:
                raise DataMissingError(f"the composition model covers H..Pu; {f} contains {el}")
            idx.append(index[el])
            w.append(x)
        idx_a, w_a = np.array(idx), np.array(w)
        out[k, idx_a] = w_a
        p = props[idx_a]
        mean = w_a @ p
        spread = np.sqrt(np.maximum(w_a @ (p - mean) ** 2, 0.0))
        base = len(symbols)
        out[k, base : base + n_p] = mean
        out[k, base + n_p : base + 2 * n_p] = spread
        out[k, base + 2 * n_p : base + 3 * n_p] = p.min(axis=0)
        out[k, base + 3 * n_p :] = p.max(axis=0)
    return out


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 192
    layers: int = 3
    dropout: float = 0.05
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    n_models: int = 4
    seed: int = 0
    validation_fraction: float = 0.1  # held out to calibrate the uncertainty


def _net(n_in: int, cfg: ModelConfig):
    import torch.nn as nn

    layers: list = []
    width = n_in
    for _ in range(cfg.layers):
        layers += [nn.Linear(width, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout)]
        width = cfg.hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _train_one(x: np.ndarray, y: np.ndarray, cfg: ModelConfig, seed: int):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _net(x.shape[1], cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * max(1, math.ceil(len(x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    net.train()
    for _ in range(cfg.epochs):
        order = rng.permutation(len(x))
        xs, ys = torch.from_numpy(x[order]), torch.from_numpy(y[order].astype(np.float32))
        for start in range(0, len(x), cfg.batch_size):
            opt.zero_grad()
            xb, yb = xs[start : start + cfg.batch_size], ys[start : start + cfg.batch_size]
            loss = torch.nn.functional.l1_loss(net(xb).squeeze(-1), yb)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net


class CompositionModel:
    """Ensemble of small MLPs: ``predict(formulas) -> (mean, std)`` in eV/atom.

    The spread of an ensemble trained on the same data underestimates the error, so the reported
    σ = sqrt(σ_ensemble² + σ_residual²), σ_residual being the RMS error on a validation split
    held out from training (``cfg.validation_fraction``)."""

    def __init__(
        self, nets, cfg: ModelConfig, y_mean: float, y_std: float, data_key: str, residual_sigma: float = 0.0
    ):
        self.nets = nets
        self.cfg = cfg
        self.y_mean = y_mean
        self.y_std = y_std
        self.data_key = data_key
        self.residual_sigma = residual_sigma

    # ------------------------------------------------------------ training
    @classmethod
    def train(cls, formulas: list[str], energies, cfg: ModelConfig | None = None) -> CompositionModel:
        import torch

        cfg = cfg or ModelConfig()
        if len(formulas) < 10:
            raise DataMissingError(
                f"the composition model needs at least 10 training phases, got {len(formulas)}"
            )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a small MLP trains faster on one thread than on two busy ones
        try:
            x = featurize(list(formulas))
            y = np.asarray(energies, dtype=float)
            val = np.random.default_rng(cfg.seed).random(len(y)) < cfg.validation_fraction
            if val.sum() < 5:
                val[:] = False
            y_mean, y_std = float(y[~val].mean()), float(y[~val].std() + 1e-9)
            yn = (y - y_mean) / y_std
            nets = [_train_one(x[~val], yn[~val], cfg, cfg.seed + i) for i in range(cfg.n_models)]
            model = cls(nets, cfg, y_mean, y_std, data_checksum(formulas, energies))
            if val.any():
                with torch.no_grad():
                    pred = np.stack([n(torch.from_numpy(x[val])).squeeze(-1).numpy() for n in nets]).mean(0)
                model.residual_sigma = float(np.sqrt(np.mean((pred * y_std + y_mean - y[val]) ** 2)))
        finally:
            torch.set_num_threads(threads)
        return model

    @classmethod
    def cached(cls, formulas: list[str], energies, cfg: ModelConfig | None = None) -> CompositionModel:
        """Load the model trained on exactly this data and configuration, else train and save it."""
        import torch

        cfg = cfg or ModelConfig()
        key = data_checksum(formulas, energies)
        cfg_key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:8]
        path = get_settings().cache_dir / "thermo" / f"composition-{key[:16]}-{cfg_key}.pt"
        if path.exists():
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
                return cls._from_state(state)
            except Exception:
                path.unlink(missing_ok=True)
        model = cls.train(formulas, energies, cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model._state(), tmp)
        tmp.replace(path)
        return model

    @classmethod
    def default(cls) -> CompositionModel:
        """Trained on the MP summary when present, else on pymatgen's experimental table."""
        return _default_model()

    def _state(self) -> dict:
        return {
            "cfg": asdict(self.cfg),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "data_key": self.data_key,
            "residual_sigma": self.residual_sigma,
            "n_in": self.nets[0][0].in_features,
            "weights": [n.state_dict() for n in self.nets],
        }

    @classmethod
    def _from_state(cls, state: dict) -> CompositionModel:
        cfg = ModelConfig(**state["cfg"])
        nets = []
        for w in state["weights"]:
            net = _net(state["n_in"], cfg)
            net.load_state_dict(w)
            net.eval()
            nets.append(net)
        return cls(
            nets, cfg, state["y_mean"], state["y_std"], state["data_key"], state.get("residual_sigma", 0.0)
        )

    # ------------------------------------------------------------ prediction
    def predict(self, formulas: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the formation energy per atom (eV/atom) of each formula."""
        import torch

        x = torch.from_numpy(featurize(list(formulas)))
        with torch.no_grad():
            preds = np.stack([n(x).squeeze(-1).numpy() for n in self.nets]) * self.y_std + self.y_mean
        return preds.mean(axis=0), np.sqrt(preds.var(axis=0) + self.residual_sigma**2)

    def predict_one(self, formula: str) -> tuple[float, float]:
        m, s = self.predict([formula])
        return float(m[0]), float(s[0])


def data_checksum(formulas, energies) -> str:
    h = hashlib.sha256()
    for f, e in zip(formulas, energies, strict=True):
        h.update(f"{f}:{float(e):.8f};".encode())
    return h.hexdigest()


def training_data(source: str = "auto") -> tuple[list[str], np.ndarray, str]:
    """(formulas, formation energies per atom, source name) to train on: MP summary or exp."""
    from .sources import ExperimentalSource, SummarySource, mp_summary_path

    if source in ("auto", "mp") and mp_summary_path().exists():
        entries = SummarySource(mp_summary_path(), name="mp").load()
        name = "mp"
    elif source == "mp":
        raise DataMissingError(f"{mp_summary_path()} is not on this machine; run `labos data fetch`")
    else:
        entries = ExperimentalSource().load()
        name = "exp"
    best: dict[str, float] = {}
    for e in entries:
        if e.composition.is_element:
            continue
        if any(el.Z > MAX_Z for el in e.composition.elements):
            continue
        best[e.formula] = min(best.get(e.formula, math.inf), e.formation_enthalpy_per_atom)
    formulas = sorted(best)
    return formulas, np.array([best[f] for f in formulas]), name


@lru_cache(maxsize=1)
def _default_model() -> CompositionModel:
    formulas, energies, _ = training_data()
    return CompositionModel.cached(formulas, energies)


def evaluate(
    formulas: list[str], energies, cfg: ModelConfig | None = None, seed: int = 0, test_fraction: float = 0.2
) -> dict:
    """Held-out MAE on a random split and on a chemical-system split (whole systems held out),
    with the mean-predictor MAE of the same split as baseline."""
    from pymatgen.core import Composition

    y = np.asarray(energies, dtype=float)
    n = len(formulas)
    rng = np.random.default_rng(seed)
    out = {}
    random_test = rng.random(n) < test_fraction
    systems = ["-".join(sorted(str(e) for e in Composition(f).elements)) for f in formulas]
    uniq = sorted(set(systems))
    held = {s for s in uniq if rng.random() < test_fraction}
    chem_test = np.array([s in held for s in systems])
    for name, test in (("random", random_test), ("chemical_system", chem_test)):
        tr = ~test
        model = CompositionModel.train([f for f, t in zip(formulas, tr, strict=True) if t], y[tr], cfg)
        pred, std = model.predict([f for f, t in zip(formulas, test, strict=True) if t])
        err = np.abs(pred - y[test])
        base = np.abs(y[test] - y[tr].mean())
        within = float(np.mean(err <= 2 * std + 1e-12))
        out[name] = {
            "n_train": int(tr.sum()),
            "n_test": int(test.sum()),
            "mae_eV_per_atom": float(err.mean()),
            "baseline_mean_predictor_mae": float(base.mean()),
            "ratio_to_baseline": float(err.mean() / base.mean()),
            "fraction_within_2sigma": within,
            "mean_sigma": float(std.mean()),
        }
    return out
