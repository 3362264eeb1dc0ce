"""Thin command-line edges over ``recsys``: parse options, call the library, print results."""
