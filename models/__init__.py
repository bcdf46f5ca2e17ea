"""labos.models — see README for the folder-to-import mapping."""
