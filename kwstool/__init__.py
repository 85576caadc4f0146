"""kwstool: keyword spotting for microcontrollers, from Speech Commands to an int8 model on the board."""

__version__ = "0.1.0"
