"""Everything about the MQTT broker that the controller owns: password hashes, the ACL rules and the
files that configure Mosquitto or the embedded amqtt broker (`files`), and the embedded broker itself."""
