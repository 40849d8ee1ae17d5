"""The egress allow-list of local worlds (sandbox, tests, benches): their servers listen
on loopback, which the controller refuses by default (``controller.adapters.egress``).
127.0.0.1 is listed by itself because the local API server listens there too, and the API
server's address is refused unless listed exactly."""

LOCAL_EGRESS = "127.0.0.0/8,127.0.0.1/32,::1,*"
