"""Everything about the MQTT broker that the controller owns: password hashes (`passwords`), the ACL rules and
the files that configure Mosquitto or the embedded amqtt broker (`files`), and the embedded broker itself
(`embedded`, with its login plugin `amqtt_auth` and its topic rules `amqtt_acl`)."""
