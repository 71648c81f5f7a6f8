"""The journey insights report (``nba insights``): HTML with plots, JSON and CSV."""
