"""Content: SMS encodings and parts, sandboxed templates, content review, smart-SMS cards.

Kept light on purpose: channels import :mod:`jingxin.content.encoding`, so nothing here
may pull in Jinja2, OpenCC or pyahocorasick at package import. Import the submodules
(``templates``, ``review``, ``card``, ...) directly.
"""
