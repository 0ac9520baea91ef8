"""The example workload's model."""

from django.db import models


class Item(models.Model):
    """Something to read and write."""

    name = models.CharField(max_length=200)
    quantity = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name
