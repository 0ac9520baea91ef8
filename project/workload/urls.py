from django.urls import path

from . import views

urlpatterns = [
    path("items/", views.items, name="items"),
    path("items/<int:pk>/", views.item_detail, name="item-detail"),
    path("one-query/", views.one_query, name="one-query"),
    path("whoami/", views.whoami, name="whoami"),
    path("cached-count/", views.cached_count, name="cached-count"),
    path("slow/", views.slow, name="slow"),
    path("slow-write/", views.slow_write, name="slow-write"),
]
