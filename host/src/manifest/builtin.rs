//! lightningd's own rpc commands and options, each with the line of
//! lightningd's source (v26.06.6) that defines it: a plugin declaring one
//! of them is killed, so the host, which declares its plugins' methods
//! and options as its own, would be.
//!
//! Owns: the two lists. Must not: hold anything a plugin registers (the
//! built-in plugins' commands and options are theirs; a name they take is
//! refused by lightningd at registration, not here), or decide what to do
//! about a clash ([`super::check`] does).

/// lightningd's own rpc commands: every `struct json_command` of
/// `lightningd/`, `wallet/` and `common/` (registered at start-up by
/// `jsonrpc_setup`, `lightningd/jsonrpc.c:1384`, `dev_only` ones included:
/// they are registered whether or not lightningd runs with `--developer`).
/// A plugin declaring one fails `jsonrpc_command_add`
/// (`lightningd/plugin.c:1387`) and is killed. `getemergencyrecoverdata`
/// and `upgradewallet` are built-in plugins' commands, kept from the list
/// this one replaced: they are always there.
pub const METHODS: &[&str] = &[
    "feerates",                      // lightningd/chaintopology.c:799
    "parsefeerate",                  // lightningd/chaintopology.c:824
    "splice_init",                   // lightningd/channel_control.c:2655
    "splice_update",                 // lightningd/channel_control.c:2661
    "splice_signed",                 // lightningd/channel_control.c:2667
    "stfu_channels",                 // lightningd/channel_control.c:2673
    "abort_channels",                // lightningd/channel_control.c:2679
    "dev-feerate",                   // lightningd/channel_control.c:2734
    "dev-peer-shachain",             // lightningd/channel_control.c:2779
    "dev-quiesce",                   // lightningd/channel_control.c:2835
    "listclosedchannels",            // lightningd/closed_channel.c:124
    "close",                         // lightningd/closing_control.c:885
    "listchainmoves",                // lightningd/coin_mvts.c:343
    "listchannelmoves",              // lightningd/coin_mvts.c:397
    "injectutxodeposit",             // lightningd/coin_mvts.c:457
    "injectutxospend",               // lightningd/coin_mvts.c:492
    "listconfigs",                   // lightningd/configs.c:298
    "setconfig",                     // lightningd/configs.c:809
    "connect",                       // lightningd/connect_control.c:255
    "sendcustommsg",                 // lightningd/connect_control.c:874
    "dev-suppress-gossip",           // lightningd/connect_control.c:896
    "dev-report-fds",                // lightningd/connect_control.c:917
    "dev-connectd-exhaust-fds",      // lightningd/connect_control.c:938
    "datastore",                     // lightningd/datastore.c:337
    "deldatastore",                  // lightningd/datastore.c:343
    "listdatastore",                 // lightningd/datastore.c:349
    "datastoreusage",                // lightningd/datastore.c:355
    "dev-queryrates",                // lightningd/dual_open_control.c:3962
    "openchannel_init",              // lightningd/dual_open_control.c:3970
    "openchannel_update",            // lightningd/dual_open_control.c:3975
    "openchannel_signed",            // lightningd/dual_open_control.c:3980
    "openchannel_bump",              // lightningd/dual_open_control.c:3985
    "openchannel_abort",             // lightningd/dual_open_control.c:3990
    "listforwards",                  // lightningd/forwards.c:232
    "delforward",                    // lightningd/forwards.c:295
    "setleaserates",                 // lightningd/gossip_control.c:413
    "addgossip",                     // lightningd/gossip_control.c:461
    "dev-set-max-scids-encode-size", // lightningd/gossip_control.c:488
    "dev-compact-gossip-store",      // lightningd/gossip_control.c:531
    "makesecret",                    // lightningd/hsm_control.c:365
    "invoice",                       // lightningd/invoice.c:1271
    "listinvoices",                  // lightningd/invoice.c:1399
    "delinvoice",                    // lightningd/invoice.c:1484
    "waitanyinvoice",                // lightningd/invoice.c:1531
    "waitinvoice",                   // lightningd/invoice.c:1578
    "createinvoice",                 // lightningd/invoice.c:1828
    "preapproveinvoice",             // lightningd/invoice.c:1885
    "preapprovekeysend",             // lightningd/invoice.c:1943
    "signinvoice",                   // lightningd/invoice.c:1997
    "help",                          // lightningd/jsonrpc.c:162
    "stop",                          // lightningd/jsonrpc.c:222
    "recover",                       // lightningd/jsonrpc.c:329
    "dev",                           // lightningd/jsonrpc.c:404
    "check",                         // lightningd/jsonrpc.c:1653
    "notifications",                 // lightningd/jsonrpc.c:1677
    "batching",                      // lightningd/jsonrpc.c:1701
    "deprecations",                  // lightningd/jsonrpc.c:1725
    "getlog",                        // lightningd/log.c:1245
    "dev-memdump",                   // lightningd/memdump.c:87
    "dev-memleak",                   // lightningd/memdump.c:272
    "createoffer",                   // lightningd/offer.c:146
    "listoffers",                    // lightningd/offer.c:213
    "disableoffer",                  // lightningd/offer.c:260
    "enableoffer",                   // lightningd/offer.c:311
    "createinvoicerequest",          // lightningd/offer.c:567
    "payersign",                     // lightningd/offer.c:602
    "listinvoicerequests",           // lightningd/offer.c:662
    "disableinvoicerequest",         // lightningd/offer.c:704
    "injectonionmessage",            // lightningd/onion_message.c:202
    "decryptencrypteddata",          // lightningd/onion_message.c:258
    "fundchannel_start",             // lightningd/opening_control.c:1795
    "fundchannel_cancel",            // lightningd/opening_control.c:1801
    "fundchannel_complete",          // lightningd/opening_control.c:1807
    "recoverchannel",                // lightningd/opening_control.c:1813
    "sendonion",                     // lightningd/pay.c:1387
    "sendpay",                       // lightningd/pay.c:1658
    "waitsendpay",                   // lightningd/pay.c:1702
    "injectpaymentonion",            // lightningd/pay.c:2132
    "listsendpays",                  // lightningd/pay.c:2294
    "delpay",                        // lightningd/pay.c:2396
    "createonion",                   // lightningd/pay.c:2462
    "listpeers",                     // lightningd/peer_control.c:2658
    "staticbackup",                  // lightningd/peer_control.c:2733
    "listpeerchannels",              // lightningd/peer_control.c:2811
    "graceful",                      // lightningd/peer_control.c:3226
    "disconnect",                    // lightningd/peer_control.c:3275
    "getinfo",                       // lightningd/peer_control.c:3412
    "waitblockheight",               // lightningd/peer_control.c:3514
    "setchannel",                    // lightningd/peer_control.c:3779
    "dev-sign-last-tx",              // lightningd/peer_control.c:3856
    "dev-fail",                      // lightningd/peer_control.c:3881
    "dev-reenable-commit",           // lightningd/peer_control.c:3928
    "dev-forget-channel",            // lightningd/peer_control.c:4041
    "dev-ignore-htlcs",              // lightningd/peer_htlcs.c:3199
    "listhtlcs",                     // lightningd/peer_htlcs.c:3291
    "ping",                          // lightningd/ping.c:126
    "plugin",                        // lightningd/plugin_control.c:311
    "showrunes",                     // lightningd/runes.c:431
    "createrune",                    // lightningd/runes.c:607
    "invokerune",                    // lightningd/runes.c:613
    "blacklistrune",                 // lightningd/runes.c:684
    "destroyrune",                   // lightningd/runes.c:690
    "checkrune",                     // lightningd/runes.c:978
    "signmessage",                   // lightningd/signmessage.c:110
    "checkmessage",                  // lightningd/signmessage.c:238
    "wait",                          // lightningd/wait.c:289
    "reserveinputs",                 // wallet/reservation.c:135
    "unreserveinputs",               // wallet/reservation.c:217
    "fundpsbt",                      // wallet/reservation.c:641
    "addpsbtoutput",                 // wallet/reservation.c:749
    "addpsbtinput",                  // wallet/reservation.c:927
    "utxopsbt",                      // wallet/reservation.c:1103
    "newaddr",                       // wallet/walletrpc.c:175
    "listaddresses",                 // wallet/walletrpc.c:270
    "dev-listaddrs",                 // wallet/walletrpc.c:351
    "listfunds",                     // wallet/walletrpc.c:501
    "dev-rescan-outputs",            // wallet/walletrpc.c:573
    "listtransactions",              // wallet/walletrpc.c:672
    "signpsbt",                      // wallet/walletrpc.c:902
    "setpsbtversion",                // wallet/walletrpc.c:938
    "dev-finalizepsbt",              // wallet/walletrpc.c:1068
    "sendpsbt",                      // wallet/walletrpc.c:1246
    "signmessagewithkey",            // wallet/walletrpc.c:1349
    "listnetworkevents",             // wallet/walletrpc.c:1412
    "delnetworkevent",               // wallet/walletrpc.c:1437
    "getemergencyrecoverdata",       // plugins/chanbackup.c:1203
    "upgradewallet",                 // plugins/txprepare.c:721
];

/// lightningd's own options (every long name given to `opt_register_*` or
/// `clnopt_*` in `lightningd/` and `common/`, aliases included, `dev-*`
/// ones too: `dev_register_opts`, `lightningd/options.c:1676`, registers
/// them whether or not lightningd runs with `--developer`). A plugin
/// declaring one is refused because `opt_find_long` finds it
/// (`lightningd/plugin.c:1065`: "option name '%s' is already taken") and
/// killed; at start-up lightningd exits.
pub const OPTIONS: &[&str] = &[
    "conf",                                  // common/configdir.c:330
    "lightning-dir",                         // common/configdir.c:337
    "network",                               // common/configdir.c:341
    "testnet",                               // common/configdir.c:345
    "testnet4",                              // common/configdir.c:348
    "signet",                                // common/configdir.c:351
    "mainnet",                               // common/configdir.c:354
    "regtest",                               // common/configdir.c:357
    "rpc-file",                              // common/configdir.c:365
    "version",                               // common/version.c:25
    "log-level",                             // lightningd/log.c:1003
    "log-timestamps",                        // lightningd/log.c:1006
    "log-prefix",                            // lightningd/log.c:1010
    "log-file",                              // lightningd/log.c:1012
    "dev-debugger",                          // lightningd/options.c:780
    "dev-no-plugin-checksum",                // lightningd/options.c:784
    "dev-builtin-plugins-unimportant",       // lightningd/options.c:788
    "dev-no-reconnect",                      // lightningd/options.c:792
    "dev-no-reconnect-private",              // lightningd/options.c:796
    "dev-fast-reconnect",                    // lightningd/options.c:800
    "dev-fail-on-subdaemon-fail",            // lightningd/options.c:805
    "dev-disconnect",                        // lightningd/options.c:808
    "dev-allow-localhost",                   // lightningd/options.c:811
    "dev-bitcoind-poll",                     // lightningd/options.c:815
    "dev-fast-gossip",                       // lightningd/options.c:819
    "dev-fast-gossip-prune",                 // lightningd/options.c:823
    "dev-force-privkey",                     // lightningd/options.c:827
    "dev-force-bip32-seed",                  // lightningd/options.c:830
    "dev-force-channel-secrets",             // lightningd/options.c:833
    "dev-max-funding-unconfirmed-blocks",    // lightningd/options.c:836
    "dev-force-tmp-channel-id",              // lightningd/options.c:843
    "dev-no-htlc-timeout",                   // lightningd/options.c:846
    "dev-fail-process-onionpacket",          // lightningd/options.c:850
    "dev-no-version-checks",                 // lightningd/options.c:854
    "dev-force-features",                    // lightningd/options.c:858
    "dev-timeout-secs",                      // lightningd/options.c:861
    "dev-no-modern-onion",                   // lightningd/options.c:865
    "dev-disable-commit-after",              // lightningd/options.c:869
    "dev-no-ping-timer",                     // lightningd/options.c:873
    "dev-onion-reply-length",                // lightningd/options.c:877
    "dev-max-fee-multiplier",                // lightningd/options.c:882
    "dev-allowdustreserve",                  // lightningd/options.c:891
    "dev-any-channel-type",                  // lightningd/options.c:895
    "dev-allow-shutdown-destination-change", // lightningd/options.c:899
    "dev-hsmd-no-preapprove-check",          // lightningd/options.c:903
    "dev-hsmd-fail-preapprove",              // lightningd/options.c:907
    "dev-fd-limit-multiplier",               // lightningd/options.c:911
    "dev-handshake-no-reply",                // lightningd/options.c:915
    "dev-strict-forwarding",                 // lightningd/options.c:919
    "dev-throttle-gossip",                   // lightningd/options.c:923
    "dev-limit-connections-inflight",        // lightningd/options.c:927
    "autoconnect-seeker-peers",              // lightningd/options.c:931
    "dev-low-prio-anchor-blocks",            // lightningd/options.c:935
    "dev-crash-after",                       // lightningd/options.c:939
    "dev-warn-on-overgrind",                 // lightningd/options.c:943
    "dev-save-plugin-io",                    // lightningd/options.c:947
    "dev-keep-nagle",                        // lightningd/options.c:951
    "dev-debug-self",                        // lightningd/options.c:956
    "test-daemons-only",                     // lightningd/options.c:1431
    "allow-deprecated-apis",                 // lightningd/options.c:1436
    "plugin",                                // lightningd/options.c:1443
    "plugin-dir",                            // lightningd/options.c:1446
    "clear-plugins",                         // lightningd/options.c:1450
    "disable-plugin",                        // lightningd/options.c:1453
    "important-plugin",                      // lightningd/options.c:1458
    "always-use-proxy",                      // lightningd/options.c:1464
    "daemon",                                // lightningd/options.c:1469
    "wallet",                                // lightningd/options.c:1471
    "recover",                               // lightningd/options.c:1475
    "large-channels",                        // lightningd/options.c:1481
    "wumbo",                                 // lightningd/options.c:1481
    "experimental-dual-fund",                // lightningd/options.c:1485
    "experimental-splicing",                 // lightningd/options.c:1492
    "experimental-shutdown-wrong-funding",   // lightningd/options.c:1499
    "experimental-peer-storage",             // lightningd/options.c:1502
    "help",                                  // lightningd/options.c:1506
    "rgb",                                   // lightningd/options.c:1508
    "alias",                                 // lightningd/options.c:1510
    "pid-file",                              // lightningd/options.c:1512
    "ignore-fee-limits",                     // lightningd/options.c:1516
    "watchtime-blocks",                      // lightningd/options.c:1520
    "funding-confirms",                      // lightningd/options.c:1523
    "require-confirmed-inputs",              // lightningd/options.c:1526
    "cltv-delta",                            // lightningd/options.c:1530
    "cltv-final",                            // lightningd/options.c:1533
    "commit-time",                           // lightningd/options.c:1536
    "fee-base",                              // lightningd/options.c:1540
    "rescan",                                // lightningd/options.c:1543
    "fee-per-satoshi",                       // lightningd/options.c:1547
    "htlc-minimum-msat",                     // lightningd/options.c:1550
    "htlc-maximum-msat",                     // lightningd/options.c:1554
    "max-concurrent-htlcs",                  // lightningd/options.c:1558
    "max-dust-htlc-exposure-msat",           // lightningd/options.c:1561
    "min-capacity-sat",                      // lightningd/options.c:1565
    "addr",                                  // lightningd/options.c:1569
    "bind-addr",                             // lightningd/options.c:1572
    "announce-addr",                         // lightningd/options.c:1575
    "announce-addr-discovered",              // lightningd/options.c:1579
    "announce-addr-discovered-port",         // lightningd/options.c:1582
    "offline",                               // lightningd/options.c:1586
    "autolisten",                            // lightningd/options.c:1588
    "proxy",                                 // lightningd/options.c:1592
    "tor-service-password",                  // lightningd/options.c:1594
    "accept-htlc-tlv-type",                  // lightningd/options.c:1598
    "disable-dns",                           // lightningd/options.c:1603
    "encrypted-hsm",                         // lightningd/options.c:1607
    "hsm-passphrase",                        // lightningd/options.c:1610
    "rpc-file-mode",                         // lightningd/options.c:1613
    "force-feerates",                        // lightningd/options.c:1618
    "commit-fee",                            // lightningd/options.c:1622
    "commit-feerate-offset",                 // lightningd/options.c:1625
    "min-emergency-msat",                    // lightningd/options.c:1629
    "subdaemon",                             // lightningd/options.c:1632
    "invoices-onchain-fallback",             // lightningd/options.c:1644
    "database-upgrade",                      // lightningd/options.c:1647
    "i-promise-to-fix-broken-api-user",      // lightningd/options.c:1651
    "payment-fronting-node",                 // lightningd/options.c:1657
    "bookkeeper-dir",                        // lightningd/options.c:1663
    "bookkeeper-db",                         // lightningd/options.c:1667
    "message-padding",                       // lightningd/options.c:1671
    "list-features-only",                    // lightningd/options.c:1803
    "developer",                             // lightningd/options.c:1808
];
