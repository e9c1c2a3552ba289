"""Programs run inside network namespaces by `intercloud.lab.nsexec` (by file path, `python
-I`): each imports only the standard library (and what its interpreter ships) and has a
`main()`."""
