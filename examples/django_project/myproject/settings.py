"""Minimal Django settings: no database, no templates, no static files.

Serve with: rwsgi --chdir examples/django_project myproject.wsgi:application
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Dummy key: this project is an example, never deploy it as is.
SECRET_KEY = "rwsgi-example-not-a-secret"

DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = []

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "myproject.urls"
WSGI_APPLICATION = "myproject.wsgi.application"

DATABASES = {}

TEMPLATES = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
