"""SafeLLM: clinical risk models whose explanations are checked against the facts.

Importing the package stays light: no torch, gradio or litellm here.
"""

__version__ = "0.1.0"
