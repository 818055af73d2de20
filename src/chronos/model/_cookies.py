"""A provider's own HTTP client reads cookies only from the responses that set some.

httpx looks for cookies in every response through `http.cookiejar`, after wrapping it and
its request in urllib's shapes (which parses the URL again): 15 µs a response here (timeit),
between the response's head and the reading of its body, so on the first token's path when
a server sends the head with the first token, for a header a model server rarely sends.
Responses that do set a cookie go to httpx's jar as before.
"""

from __future__ import annotations

import httpx

__all__ = ["cookies_when_set"]


class _Cookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        # What `http.cookiejar` reads; the headers' lookup ignores case, as it does.
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


def cookies_when_set(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client`, reading cookies only from responses with `Set-Cookie` (or `Set-Cookie2`)."""
    # httpx's `cookies` setter would copy them into a plain `Cookies`.
    client._cookies = _Cookies(client.cookies)
    return client
