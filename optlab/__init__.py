"""OptLab's engine: torch.optim optimizers on 2-D surfaces, as configs in and records out.

Nothing under ``optlab`` except ``optlab.ui`` imports Streamlit, so the engine
works the same from a notebook, the CLI (``python -m optlab``) and tests.
"""

__version__ = "0.1.0"
