"""Starter template library (YAML data, loaded by :mod:`jingxin.content.library`)."""
