"""The hosted checkout, under /pay/: the page and the status its script polls."""
from django.urls import path

from . import views

app_name = "checkout"
urlpatterns = [
    path("<str:client_secret>", views.checkout_page, name="page"),
    path("<str:client_secret>/status", views.checkout_status, name="status"),
]
