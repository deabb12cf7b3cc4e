"""A stand-in for torchvision, for the neural-style peer only (bench/peers/neural_style_peer.py).

This is NOT torchvision. torchvision cannot be installed beside this project's CPU build of
torch, and the PyPI package ``neural-style`` 0.5.7 imports ``torchvision.transforms`` only to load
and save images. :mod:`torchvision.transforms` here re-implements exactly the few transforms it
uses, with torchvision's semantics. This folder is put first on ``sys.path`` (PYTHONPATH) of the
neural-style subprocess only; nothing else imports it.
"""
