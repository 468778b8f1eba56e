"""cold-keras: COLD fusion for uncertainty-aware audiovisual emotion recognition (Keras 3)."""

__version__ = "0.1.0"
