"""blis-sweep: vectorized capacity-planning sweeps of LLM serving."""
__version__ = "0.1.0"
