"""labos.simulator — see README for the folder-to-import mapping."""
