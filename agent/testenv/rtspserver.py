#!/usr/bin/python3
"""A real RTSP server for cvedge's tests: GStreamer's RTSP server (gst-rtsp-server) through
Debian's Python GObject bindings, serving one H.264 stream on a loopback port.

    /usr/bin/python3 rtspserver.py --port 8554 [--path /stream1] [--user U --password P]
                                   [--fps 25] [--width 320 --height 240]

Each frame is drawn here and stamped with the wall clock: the first row of 32 blocks of
STAMP_BLOCK x STAMP_BLOCK pixels holds the low 32 bits of the time in milliseconds at which
the frame was made (white: 1, black: 0, most significant bit on the left), so a client on
the same machine can measure the delay from the frame's making to its capture. Below the
stamp, a bar moves one step a frame, so consecutive frames differ.

It prints "ready rtsp://127.0.0.1:PORT/PATH" on stdout once it listens, then "setup
TRANSPORT" for each SETUP request (the transport the client asked for: RTP/AVP/TCP;... or
RTP/AVP;unicast;client_port=...), and serves until it is killed. --check exits 0 when all it
needs is installed, else 3 with a line "missing: ..." saying what to install. With --user and --password, clients must authenticate (RTSP Basic auth). The
factory offers both transports: RTP over the RTSP TCP connection, and RTP over UDP.

Needs: python3-gi, gir1.2-gst-rtsp-server-1.0, python3-gst-1.0, gstreamer1.0-plugins-base,
-good (rtph264pay) and an H.264 encoder: x264enc (gstreamer1.0-plugins-ugly) or openh264enc
(gstreamer1.0-plugins-bad).
"""

import argparse
import sys
import threading
import time

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as e:
    print("missing: %s (apt-get install python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0)" % e)
    sys.exit(3)

STAMP_BLOCK = 8
STAMP_BITS = 32


def encoder(fps):
    """The first H.264 encoder installed, set for low latency and a key frame every second."""
    gop = max(1, int(fps))
    if Gst.ElementFactory.find("x264enc"):
        return "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d" % gop
    if Gst.ElementFactory.find("openh264enc"):
        return "openh264enc gop-size=%d complexity=low" % gop
    print("missing: an H.264 encoder (apt-get install gstreamer1.0-plugins-ugly for x264enc, or gstreamer1.0-plugins-bad for openh264enc)")
    sys.exit(3)


def on_client(_server, client):
    """Prints the transport each client asks for in its SETUP: "setup RTP/AVP/TCP;...". """
    def setup(_client, ctx):
        res, value = ctx.request.get_header(GstRtsp.RTSPHeaderField.TRANSPORT, 0)
        print("setup %s" % (value if res == GstRtsp.RTSPResult.OK else "?"), flush=True)
        return GstRtsp.RTSPStatusCode.OK
    client.connect("pre-setup-request", setup)


class Frames:
    """Draws stamped GRAY8 frames and pushes them into every appsrc of a playing media."""

    def __init__(self, width, height, fps):
        self.width, self.height, self.fps = width, height, fps
        self.lock = threading.Lock()
        self.sources = []
        self.n = 0

    def add(self, appsrc):
        with self.lock:
            self.sources.append(appsrc)

    def frame(self):
        w, h = self.width, self.height
        stamp = int(time.time() * 1000) & 0xFFFFFFFF
        row = bytearray(w)
        for bit in range(STAMP_BITS):
            if stamp >> (STAMP_BITS - 1 - bit) & 1:
                x = bit * STAMP_BLOCK
                row[x:x + STAMP_BLOCK] = b"\xff" * STAMP_BLOCK
        img = bytearray(bytes(row) * STAMP_BLOCK)
        body = bytearray(b"\x40" * (w * (h - STAMP_BLOCK)))
        bar = (self.n * 4) % w
        for y in range(STAMP_BLOCK, h - STAMP_BLOCK):
            off = (y - STAMP_BLOCK) * w + bar
            body[off:off + 8] = b"\xc0" * min(8, w - bar)
        self.n += 1
        return bytes(img + body)

    def push(self):
        data = None
        with self.lock:
            live = []
            for src in self.sources:
                if data is None:
                    data = self.frame()
                if src.emit("push-buffer", Gst.Buffer.new_wrapped(data)) == Gst.FlowReturn.OK:
                    live.append(src)
            self.sources = live  # a media that stopped refuses buffers: forget it
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/stream1")
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--check", action="store_true", help="exit 0 when everything the server needs is installed")
    a = ap.parse_args()
    if a.width < STAMP_BLOCK * STAMP_BITS or a.height < 4 * STAMP_BLOCK:
        sys.exit("--width must be at least %d and --height %d" % (STAMP_BLOCK * STAMP_BITS, 4 * STAMP_BLOCK))

    Gst.init(None)
    for name in ("appsrc", "videoconvert", "rtph264pay"):
        if not Gst.ElementFactory.find(name):
            print("missing: GStreamer element %s (apt-get install gstreamer1.0-plugins-base gstreamer1.0-plugins-good)" % name)
            sys.exit(3)
    if a.check:
        encoder(a.fps)
        print("ok")
        return
    frames = Frames(a.width, a.height, a.fps)
    launch = (
        "( appsrc name=src is-live=true do-timestamp=true format=time "
        "caps=video/x-raw,format=GRAY8,width=%d,height=%d,framerate=%d/1 "
        "! videoconvert ! video/x-raw,format=I420 ! %s ! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    ) % (a.width, a.height, a.fps, encoder(a.fps))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.set_latency(0)
    factory.connect("media-configure", lambda _f, media: frames.add(media.get_element().get_by_name_recurse_up("src")))

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    server.connect("client-connected", on_client)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken.new()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen on 127.0.0.1:%d" % a.port)

    GLib.timeout_add(max(1, 1000 // a.fps), frames.push)
    print("ready rtsp://127.0.0.1:%d%s" % (a.port, a.path), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
