"""The local web app behind ``stylize serve``: upload images, watch the painting appear, download it.

Build the ASGI app with :func:`create_app` and run it with uvicorn. Needs the ``web`` extra
(``pip install 'stylize[web]'``: FastAPI, uvicorn, python-multipart).
"""

from stylize.web.app import create_app

__all__ = ["create_app"]
