"""The token-counting helper process of :class:`~finetune_web._counting.BatchCounting`.

:class:`~finetune_web._counting.BatchCounting` runs this file as ``__main__``
with the encoding names as arguments, without importing ``finetune_web`` (it
starts faster): it loads the encodings,
writes one byte (``+``) when ready, then answers each request on stdin (a
list of ``(encoding name, texts)``) with the token length of every text,
until stdin ends.

Messages, both ways: an 8-byte little-endian length, then a pickle.  Only
the standard library and tiktoken are imported here.
"""

from __future__ import annotations

import pickle
import sys
from typing import IO, Any

_HEADER = 8


def send(stream: IO[bytes], value: Any) -> None:
    """Write one message: its 8-byte little-endian length, then its pickle."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_HEADER, "little"))
    stream.write(data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """Read one message written by :func:`send`.

    Raises:
        EOFError: the stream ended before a whole message.
    """
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        raise EOFError("the stream ended")
    size = int.from_bytes(header, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the stream ended inside a message")
    return pickle.loads(data)


def main(names: list[str]) -> None:
    """Serve counting requests on stdin/stdout until stdin ends."""
    import tiktoken

    encodings = {name: tiktoken.get_encoding(name) for name in names}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"+")
    stdout.flush()
    while True:
        try:
            request = receive(stdin)
        except EOFError:
            return
        send(
            stdout,
            [
                [len(encodings[name].encode_ordinary(text)) for text in texts]
                for name, texts in request
            ],
        )


if __name__ == "__main__":
    main(sys.argv[1:])
