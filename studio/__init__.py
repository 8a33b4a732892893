"""Fine-tuning Studio engine. Never imports gradio: everything here runs headless."""

__version__ = "0.1.0"
