"""The rules every nbchat peer follows, written once in Python (js/core/ is the TypeScript twin).

Pure: no I/O, no asyncio, time passed in. Each module is pinned to its twin by a golden
fixture in tests/fixtures/ that both test suites run (docs/protocol.md says which).
"""
