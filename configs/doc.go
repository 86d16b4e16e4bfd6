// Package configs is outpost's configuration: the schema of the YAML file
// (Config and the types under it), the loader (Load, Parse), the embedded
// default config (Default, DefaultYAML), and example field configs
// (Examples, from configs/examples/).
//
// # Loading
//
// Parse reads the file into a yaml.Node tree and decodes it with a small
// reflection-based walker over the structs' yaml tags, so that every problem
// is found in one pass and reported with its line: unknown keys (with the
// nearest valid key, or the list of valid ones), values of the wrong type,
// bad values, missing required fields, and the checks across fields (unique
// names and addresses, routes against their bridge type, device "show"
// values naming a bridge, templates and topic filters). The problems come
// back together as an ErrorList, sorted by line, one per line of its
// Error():
//
//	outpost.yaml:12: queue.max_age: invalid duration "7d" (want a number with a unit, such as 500ms, 30s, 2m or 1h)
//	outpost.yaml:31: bridges[0].forward[0].to: bad template "site/{0}": levels count from 1, not 0, in {0}
//
// # Values
//
//   - Durations are Go durations: 500ms, 30s, 2m, 168h. None may be negative.
//   - Sizes (type Size) are bytes, or a number with KiB, MiB, GiB, TiB (powers
//     of 1024) or KB, MB, GB, TB (powers of 1000): 1GiB, 1.5MiB.
//   - Integers may be written in hex, octal or binary: 0x76.
//   - Booleans are true/false (also yes/no, on/off).
//   - ${VAR} and ${VAR:-default} expand from the environment inside scalar
//     values, after the YAML is parsed, so a variable can never change the
//     structure of the file. The default applies when VAR is unset or empty
//     and runs to the first "}". $${ is a literal ${; a lone $ is left alone
//     (bcrypt hashes need no escaping). An unset variable without a default
//     is an error. ${OUTPOST_GATEWAY_ID}, when the environment does not set
//     it, is the config's own gateway_id.
//   - Anchors, aliases and merge keys (<<) work as in YAML. Since unknown
//     keys are errors, an anchor goes on a value under a known key.
//   - Relative paths (data_dir, TLS and password files) are relative to the
//     config file's directory. The loader only resolves them; it opens none.
package configs
