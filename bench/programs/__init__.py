"""The benchmark's programs run inside a gateway namespace (intercloud.lab.nsexec: by file
path, `python -I`; the standard library and httpx only)."""
