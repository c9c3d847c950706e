"""jingxin (精信): precision SMS marketing and service platform for telecom operators."""

__version__ = "0.1.0"
