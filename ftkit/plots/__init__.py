"""matplotlib figures the lessons show, one module per topic (kept small and dpi-light)."""
