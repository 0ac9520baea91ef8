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
    path("wait-between-queries/", views.wait_between_queries, name="wait-between-queries"),
    # Async views (served in the event loop under ASGI, through async_to_sync under WSGI).
    path("async/one-query/", views.one_query_async, name="async-one-query"),
    path("async/one-query-shared-thread/", views.one_query_shared_thread, name="async-one-query-shared-thread"),
    path("async/items/", views.items_async, name="async-items"),
    path("async/whoami/", views.whoami_async, name="async-whoami"),
]
