"""The service's routers, one module per resource; `snipix.app` includes them.

Each router is HTTP only: it parses and checks what the request carries, calls its
domain's service, and turns the answer into a response (status, `ETag`, body). The rules
live in the services.
"""
