"""The portal pages of payments, mounted in the portal's namespace (gateway/urls.py)."""
from django.urls import path

from . import home_views

urlpatterns = [
    path("", home_views.home_page, name="home"),
]
