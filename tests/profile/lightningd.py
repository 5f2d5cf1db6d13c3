"""Plays lightningd towards a plugin (or a proxy) over its stdio, for the
profiling scripts beside this file: starts it as lightningd would (cwd
`<lightning-dir>/regtest`, LIGHTNINGD_PLUGIN=1), sends getmanifest and init,
then whatever the script sends."""
import json, os, subprocess, tempfile


class Lightningd:
    def __init__(self, cmd):
        self.dir = tempfile.mkdtemp()
        os.makedirs(self.dir + "/regtest")
        env = dict(os.environ, LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION="v26.06.6")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=self.dir + "/regtest", env=env)
        self.dec = json.JSONDecoder()
        self.buf = ""

    def read(self):
        """The next message from the plugin."""
        while True:
            self.buf = self.buf.lstrip()
            if self.buf:
                try:
                    v, i = self.dec.raw_decode(self.buf)
                    self.buf = self.buf[i:]
                    return v
                except ValueError:
                    pass
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit("eof")
            self.buf += chunk.decode()

    def send(self, o):
        self.proc.stdin.write((json.dumps(o) + "\n\n").encode())
        self.proc.stdin.flush()

    def handshake(self, options=None):
        """getmanifest and init (with `options`), each waited for."""
        self.send({"jsonrpc": "2.0", "id": 1, "method": "getmanifest",
                   "params": {"allow-deprecated-apis": False}})
        while "result" not in (m := self.read()) or m.get("id") != 1:
            pass
        self.send({"jsonrpc": "2.0", "id": 2, "method": "init", "params": {
            "options": options or {},
            "configuration": {"lightning-dir": self.dir, "rpc-file": "lightning-rpc",
                              "startup": True, "network": "regtest", "feature_set": {}}}})
        while self.read().get("id") != 2:
            pass

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
