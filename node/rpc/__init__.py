"""JSON-RPC 2.0 server of a fedmarket node: the pure protocol layer, the method handlers over `NodeApi`, and
the HTTP server (hypercorn on trio) that carries them."""
