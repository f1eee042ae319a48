"""The admin's REST API over httpx: JSON in and out, each failure turned into a CtlError."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from ctl.config import Target
from ctl.errors import AuthRefused, CtlError, Unreachable, UsageError, for_status
from i18n.languages import DEFAULT, Language

if TYPE_CHECKING:
    import httpx

API_PREFIX = "/api/v1"
USER_AGENT = "unitedcron-ctl"


class Api:
    """One HTTP client for one command; `with Api(...) as api: api.get("/rules")`."""

    def __init__(
        self, target: Target, timeout_s: float = 10.0, language: Language = DEFAULT
    ) -> None:
        # Imported here: `unitedcron center` and `agent` load this module too, without needing it.
        import httpx

        # The server gives its error reasons in the reader's language (the JSON's values and
        # keys stay as they are: scripts read them).
        headers = {"User-Agent": USER_AGENT, "Accept-Language": language.value}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self.url = target.url
        # Without a token, a 401 means "log in" (but not for the login itself).
        self._hint_login = not target.token
        self._http = httpx.Client(
            base_url=target.url + API_PREFIX, headers=headers, timeout=timeout_s
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.call("GET", path, params=query)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (None for 204); CtlError for any other outcome."""
        import httpx

        try:
            answer = self._http.request(method, path, **kwargs)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise UsageError(f"cannot use {self.url}: {exc}", "--url") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"no answer from {self.url}: {exc or type(exc).__name__}") from None
        if answer.status_code == 401 and self._hint_login and path != "/auth/token":
            raise AuthRefused("no token: give --token, set UNITEDCRON_TOKEN or run `ctl login`")
        if answer.is_success:
            return answer.json() if answer.content else None
        raise _error(answer)


def _error(answer: httpx.Response) -> CtlError:
    """The server's {"error": {"field", "reason"}}, or the status line when it sent none."""
    try:
        error = answer.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    reason = error.get("reason") or f"HTTP {answer.status_code} {answer.reason_phrase}"
    english = str(error.get("reason_en") or reason)
    return for_status(answer.status_code)(str(reason), error.get("field"), english)
