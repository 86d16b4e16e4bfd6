// Package route holds the small, allocation-free pieces a bridge needs on the
// publish path: MQTT topic filter validation and matching, the topic and key
// templates of bridge routes, and a Table that maps a topic to the set of
// bridges whose forward routes match it.
//
// Filters follow MQTT 3.1.1 and 5 (section 4.7): levels are separated by "/",
// "+" matches exactly one level (which may be empty), "#" matches the parent
// level and any number of levels below it and must be last, and a filter that
// starts with a wildcard does not match a topic that starts with "$" (such as
// "$SYS/...").
//
// Templates are literal text with placeholders:
//
//	{topic}       the whole local topic
//	{gateway_id}  the gateway id from the config
//	{N}           the Nth level of the topic, 1-based ("" past the last level)
//	{N...}        levels N to the end, joined by "/" ("" past the last level)
//	{{ and }}     a literal "{" and "}"
//
// So with topic "sensors/pump-1/temp" and gateway "pi-0001", the template
// "site/{gateway_id}/{2...}" expands to "site/pi-0001/pump-1/temp".
//
// The package imports nothing from the rest of the module, so every package
// (and the config loader) can use it.
package route
