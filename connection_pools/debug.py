"""An exception-reporter filter (and reporter) that also hide the credentials inside URLs.

Django's ``SafeExceptionReporterFilter`` hides settings by key name (``PASSWORD``,
``SECRET_KEY``...), but a password inside a URL stays visible on the DEBUG page and
in error e-mails: the cache ``LOCATION``, ``CONNECTION_POOLS["REDIS"][...]["url"]``,
a ``DATABASE_URL`` in ``request.META`` under ``runserver``, or a local variable
holding a URL in a traceback frame. :class:`CredentialCleansingFilter` masks them
all (``redis://user:***@host``), whatever characters the password holds; the filter
never sees the exception's own message or the source lines, so
:class:`CredentialCleansingReporter` masks those::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "connection_pools.debug.CredentialCleansingFilter"
    DEFAULT_EXCEPTION_REPORTER = "connection_pools.debug.CredentialCleansingReporter"
"""

from __future__ import annotations

from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from .core.masking import mask_text


class MaskedRepr:
    """Shows as the masked ``repr`` of an object the debug page would otherwise print as is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class CredentialCleansingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus the password of every URL in settings, ``request.META`` and frame variables."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        """Django's cleansing by key (recursing into dicts, lists and tuples), then URL passwords in text."""
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_text(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        """Django's ``sensitive_variables`` handling, then every value cleansed as a setting of its name."""
        return [(name, self._cleanse_variable(name, value))
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]

    def _cleanse_variable(self, name: str, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str | dict | list | tuple):
            return self.cleanse_setting(name, value)
        try:
            text = repr(value)
        except Exception:  # the page says so itself when it cannot format a value
            return value
        masked = mask_text(text)
        return value if masked == text else MaskedRepr(masked)


class CredentialCleansingReporter(ExceptionReporter):
    """Django's reporter, with URL passwords masked in the exception messages and the source lines shown."""

    TEXT_KEYS = ("exception_value", "exception_notes")
    FRAME_TEXT_KEYS = ("context_line",)
    FRAME_LINES_KEYS = ("pre_context", "post_context")

    def get_traceback_data(self) -> dict[str, Any]:
        """The page's context, every text that may quote a URL masked."""
        data = super().get_traceback_data()
        for key in self.TEXT_KEYS:
            # Django 6 passes the exception itself as exception_value (the page prints its str()).
            if data.get(key) is not None:
                data[key] = mask_text(str(data[key]))
        for frame in data.get("frames", []):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = mask_text(str(frame["exc_cause"]))
            for key in self.FRAME_TEXT_KEYS:
                if isinstance(frame.get(key), str):
                    frame[key] = mask_text(frame[key])
            for key in self.FRAME_LINES_KEYS:
                if isinstance(frame.get(key), list):
                    frame[key] = [mask_text(line) if isinstance(line, str) else line for line in frame[key]]
        return data
