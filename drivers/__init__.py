"""labos.drivers — see README for the folder-to-import mapping."""
