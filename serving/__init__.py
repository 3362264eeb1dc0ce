"""The BentoML recommendation service (thin: parse, authenticate, call ``recsys``, answer)."""
