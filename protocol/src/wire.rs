//! How messages are framed on a plugin's stdin and stdout.

/// What follows every JSON message lightningd writes to a plugin, and what
/// a plugin (pyln-client, cln-plugin, the guest SDK, the host itself)
/// writes after each of its own: a blank line. lightningd promises it in
/// `lightningd/plugin.c` ("We promise it will end in '\\n\\n'", where it
/// forwards a plugin's JSON-RPC call). A reader does not need it to split
/// messages (the JSON says where one ends); every writer sends it all the
/// same, as plugins written for lightningd expect it.
pub const MESSAGE_SEPARATOR: &[u8] = b"\n\n";
