"""The egress allow-list of local worlds (sandbox, tests, benches): their servers listen
on loopback, which the controller refuses by default (``controller.adapters.egress``)."""

LOCAL_EGRESS = "127.0.0.0/8,::1,*"
