"""labos.planners — see README for the folder-to-import mapping."""
