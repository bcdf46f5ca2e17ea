"""Routers of the console: auth, data (campaigns, experiments, samples, events), lab, admin, pages."""
