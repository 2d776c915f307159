"""WSGI entry point: ``gunicorn kitapp.wsgi:application``."""

from __future__ import annotations

from flask import Flask

from kitapp.web import create_app

application: Flask = create_app()
