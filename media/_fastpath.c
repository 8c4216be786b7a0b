/* media._fastpath: one frame's RTP packets to many viewers, SRTP-protected and sent in C.
 *
 * The Python fan-out (media/viewer_link.py) pays one pylibsrtp protect() and one asyncio
 * sendto() per viewer-packet: ~5 us and ~7 us of Python around ~3 us of real work
 * (FIELD-NOTES, "Per-packet costs"). Here one call takes a frame's packets (already
 * serialized once for the room, media/rtp_stream.py) and a list of viewers, and for each
 * viewer: copies each packet into a scratch buffer, calls libsrtp's srtp_protect() on the
 * viewer's OWN session (the srtp_t aiortc's pylibsrtp Session holds), and hands that
 * viewer's packets of the frame to the kernel in ONE syscall:
 *   - UDP GSO (sendmsg + UDP_SEGMENT): when the frame's packets all have the size of the
 *     first but the last (aiortc's VP8/H.264 packetizers fill to the MTU), one datagram
 *     buffer the kernel cuts into segments (~1.3 us per packet vs ~4.3 us with sendmmsg,
 *     measured here); disabled for good at the first EINVAL/EIO-style refusal;
 *   - otherwise sendmmsg() with one message per packet (audio: one packet, one message).
 * No Python call per viewer-packet: per viewer only the socket's fileno() is asked, so a
 * socket closed since the caller's plan was made is seen (fd -1) and never written to.
 *
 * Measured on this 2-core machine (`python -m bench.send_paths --viewers 100,200 --rounds
 * 5`, process CPU per viewer-packet, loopback, 3-packet video frames and Opus packets):
 * AES-CM-HMAC: this path 3.4-3.5 us with GSO, 4.4-4.8 us with sendmmsg alone, the Python
 * path 6.8-7.9 us (native/python 0.45-0.50); AES-GCM: 2.9 / 3.9 / 6.4-6.5 us (0.44-0.45).
 *
 * Sharing the SRTP session with aiortc keeps one rollover counter and replay state per
 * viewer for both paths: the Python NACK retransmit (media/viewer_link.py) protects through
 * the same srtp_t after native sends, and a sequence wrap past 65,535 is seen once.
 * srtp_protect is called through a pointer the caller takes from pylibsrtp's own compiled
 * library (media/fastpath.py checks its libsrtp 2 signature: ctx, buffer, int *len; libsrtp
 * 3 changed it to separate in/out buffers and size_t lengths, which we refuse to call).
 * Everything runs on the event-loop thread with the GIL held, like pylibsrtp's protect().
 *
 * Each viewer has its own aioice UDP socket, so sendmmsg/GSO batch one viewer's packets
 * of a frame, not the viewers of a room. A shared socket (ICE-mux: every viewer on one
 * local port, told apart by remote address) would let one sendmmsg carry a frame to up to
 * 1,024 viewers (UIO_MAXIOV) and cut syscalls by another ~N/3; aioice has no such mode,
 * so that is left for later.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

/* SRTP_MAX_TRAILER_LEN in pylibsrtp: tag (16) + MKI (128) */
#define TRAILER 144
#define MAX_PACKET 1500
#define SLOT (MAX_PACKET + TRAILER)
/* Kernel limit on GSO segments per send (UDP_MAX_SEGMENTS is 64 on older kernels). */
#define MAX_GSO_SEGMENTS 64
/* A GSO send is one UDP datagram to the stack: its payload must stay under 64 KB. */
#define GSO_MAX_BYTES 60000
#define MAX_PACKETS 512

static int gso_enabled = 1;
static unsigned long long gso_sends = 0, mmsg_sends = 0;

static uint8_t scratch[MAX_PACKETS * SLOT];

/* One GSO send of slots first..first+count-1: packed back to back at the first slot, one
 * sendmsg with UDP_SEGMENT = lens[first] (all segments that size but the last, checked by
 * the caller). Returns 1 if sent, 0 if GSO is refused here (slots restored: use sendmmsg),
 * -1 on another error (*err). */
static int send_gso(int fd, const struct sockaddr *addr, socklen_t addrlen,
                    const int *lens, int first, int count, int *err)
{
    uint8_t *base = scratch + (size_t)first * SLOT;
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        if (i > 0)
            memmove(base + total, base + (size_t)i * SLOT, (size_t)lens[first + i]);
        total += (size_t)lens[first + i];
    }
    struct iovec iov = { base, total };
    char control[CMSG_SPACE(sizeof(uint16_t))];
    memset(control, 0, sizeof(control));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = (void *)addr;
    msg.msg_namelen = addrlen;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t gso_size = (uint16_t)lens[first];
    memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
    ssize_t r;
    do {
        r = sendmsg(fd, &msg, 0);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
        gso_sends++;
        return 1;
    }
    int e = errno;
    /* unpack (from the last, so nothing is overwritten before it moved) */
    size_t offset = total;
    for (int i = count - 1; i > 0; i--) {
        offset -= (size_t)lens[first + i];
        memmove(base + (size_t)i * SLOT, base + offset, (size_t)lens[first + i]);
    }
    if (e == EINVAL || e == EIO || e == ENOPROTOOPT || e == EOPNOTSUPP) {
        gso_enabled = 0; /* no GSO here (kernel, device or socket): sendmmsg from now on */
        return 0;
    }
    *err = e;
    return -1;
}

/* Send `count` datagrams of the scratch buffer (lengths in lens) on fd, in as few syscalls
 * as the kernel allows. Returns how many the kernel took; on a short send *err is errno. */
static int send_packets(int fd, const struct sockaddr *addr, socklen_t addrlen,
                        const int *lens, int count, int *err)
{
    int sent = 0;
    *err = 0;
    if (gso_enabled && count > 1) {
        int seg = lens[0], same = 1;
        for (int i = 1; i < count - 1; i++)
            if (lens[i] != seg) { same = 0; break; }
        if (same && lens[count - 1] <= seg) {
            /* a GSO send carries at most MAX_GSO_SEGMENTS and ~64 KB: a big keyframe
             * takes a few, every chunk but the last all full-size segments */
            int per_send = GSO_MAX_BYTES / seg;
            if (per_send > MAX_GSO_SEGMENTS)
                per_send = MAX_GSO_SEGMENTS;
            while (sent < count && gso_enabled) {
                int n = count - sent < per_send ? count - sent : per_send;
                if (n == 1)
                    break; /* a lone last packet: sendmmsg below */
                int r = send_gso(fd, addr, addrlen, lens, sent, n, err);
                if (r < 0)
                    return sent;
                if (r == 0)
                    break;
                sent += n;
            }
            if (sent == count)
                return count;
        }
    }
    struct mmsghdr msgs[MAX_PACKETS];
    struct iovec iovs[MAX_PACKETS];
    int rest = count - sent;
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)rest);
    for (int i = 0; i < rest; i++) {
        iovs[i].iov_base = scratch + (size_t)(sent + i) * SLOT;
        iovs[i].iov_len = (size_t)lens[sent + i];
        msgs[i].msg_hdr.msg_name = (void *)addr;
        msgs[i].msg_hdr.msg_namelen = addrlen;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int done = 0;
    while (done < rest) {
        int r = sendmmsg(fd, msgs + done, (unsigned int)(rest - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            break;
        }
        mmsg_sends++;
        done += r;
    }
    return sent + done;
}

PyDoc_STRVAR(send_frame_doc,
"send_frame(protect, packets, targets) -> list of (index, sent, error)\n\n"
"protect: the address of libsrtp 2's srtp_protect. packets: the frame's RTP packets\n"
"(bytes, the same for every target). targets: a sequence of (srtp_t address, socket,\n"
"sockaddr bytes from sockaddr()[, sequence-number offset added mod 2^16]).\nFor each target, protects every packet through its\n"
"session and sends them in one syscall. Returns only the targets not fully served:\n"
"(index in targets, packets the kernel took, errno), errno EBADF for a closed socket,\n"
"a negative libsrtp status for a protect failure.");

static PyObject *send_frame(PyObject *self, PyObject *args)
{
    unsigned long long protect_addr;
    PyObject *packets, *targets;
    if (!PyArg_ParseTuple(args, "KOO:send_frame", &protect_addr, &packets, &targets))
        return NULL;
    protect_fn protect = (protect_fn)(uintptr_t)protect_addr;
    if (protect == NULL) {
        PyErr_SetString(PyExc_ValueError, "protect must be a function address");
        return NULL;
    }
    PyObject *pfast = PySequence_Fast(packets, "packets must be a sequence of bytes");
    if (pfast == NULL)
        return NULL;
    PyObject *tfast = PySequence_Fast(targets, "targets must be a sequence");
    if (tfast == NULL) {
        Py_DECREF(pfast);
        return NULL;
    }
    PyObject *failures = PyList_New(0);
    Py_ssize_t npackets = PySequence_Fast_GET_SIZE(pfast);
    Py_ssize_t ntargets = PySequence_Fast_GET_SIZE(tfast);
    const char *data[MAX_PACKETS];
    int sizes[MAX_PACKETS];
    int lens[MAX_PACKETS];
    if (failures == NULL)
        goto error;
    if (npackets > MAX_PACKETS) {
        PyErr_Format(PyExc_ValueError, "at most %d packets a frame", MAX_PACKETS);
        goto error;
    }
    for (Py_ssize_t i = 0; i < npackets; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(pfast, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "packets must be bytes");
            goto error;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        if (size < 12 || size > MAX_PACKET) {
            PyErr_Format(PyExc_ValueError, "an RTP packet is 12-%d bytes, got %zd",
                         MAX_PACKET, size);
            goto error;
        }
        data[i] = PyBytes_AS_STRING(item);
        sizes[i] = (int)size;
    }
    for (Py_ssize_t t = 0; t < ntargets; t++) {
        PyObject *target = PySequence_Fast_GET_ITEM(tfast, t);
        unsigned long long ctx;
        PyObject *sock;
        const char *addr;
        Py_ssize_t addrlen;
        int seq_delta = 0;
        if (!PyArg_ParseTuple(target, "KOy#|i:target", &ctx, &sock, &addr, &addrlen,
                              &seq_delta))
            goto error;
        int err = 0, sent = 0;
        int fd = PyObject_AsFileDescriptor(sock);
        if (fd < 0) {
            PyErr_Clear(); /* a closed socket answers -1: never write to a reused number */
            err = EBADF;
        } else if (ctx == 0) {
            err = -1;
        } else {
            for (Py_ssize_t i = 0; i < npackets; i++) {
                uint8_t *slot = scratch + (size_t)i * SLOT;
                memcpy(slot, data[i], (size_t)sizes[i]);
                if (seq_delta != 0) {
                    /* this viewer's own numbering (it switched renditions: one track) */
                    uint16_t seq = (uint16_t)(((slot[2] << 8) | slot[3]) + seq_delta);
                    slot[2] = (uint8_t)(seq >> 8);
                    slot[3] = (uint8_t)(seq & 0xff);
                }
                lens[i] = sizes[i];
                int status = protect((void *)(uintptr_t)ctx, slot, &lens[i]);
                if (status != 0) {
                    err = -status;
                    break;
                }
            }
            if (err == 0)
                sent = send_packets(fd, (const struct sockaddr *)addr, (socklen_t)addrlen,
                                    lens, (int)npackets, &err);
        }
        if (sent < npackets) {
            PyObject *row = Py_BuildValue("(nii)", t, sent, err ? err : EIO);
            if (row == NULL || PyList_Append(failures, row) < 0) {
                Py_XDECREF(row);
                goto error;
            }
            Py_DECREF(row);
        }
    }
    Py_DECREF(pfast);
    Py_DECREF(tfast);
    return failures;
error:
    Py_DECREF(pfast);
    Py_DECREF(tfast);
    Py_XDECREF(failures);
    return NULL;
}

PyDoc_STRVAR(sockaddr_doc,
"sockaddr(host, port) -> bytes\n\n"
"A struct sockaddr_in / sockaddr_in6 for a numeric address, for send_frame's targets.");

static PyObject *make_sockaddr(PyObject *self, PyObject *args)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si:sockaddr", &host, &port))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port must be 0-65535");
        return NULL;
    }
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    memset(&v4, 0, sizeof(v4));
    memset(&v6, 0, sizeof(v6));
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&v4, sizeof(v4));
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&v6, sizeof(v6));
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
    return NULL;
}

static PyObject *counters(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("{s:K,s:K,s:O}", "gso_sends", gso_sends, "sendmmsg_sends", mmsg_sends,
                         "gso_enabled", gso_enabled ? Py_True : Py_False);
}

static PyObject *set_gso(PyObject *self, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    gso_enabled = on;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"send_frame", send_frame, METH_VARARGS, send_frame_doc},
    {"sockaddr", make_sockaddr, METH_VARARGS, sockaddr_doc},
    {"counters", counters, METH_NOARGS, "Syscalls made so far, by kind, and whether GSO is on."},
    {"set_gso", set_gso, METH_O, "Turn UDP GSO on or off (tests and the bench compare)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "media._fastpath",
    "One frame's RTP packets to many viewers: SRTP protect and batched UDP sends in C.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* SEQ_OFFSET: targets may carry a sequence-number offset (media/fastpath.py checks) */
    if (PyModule_AddIntConstant(m, "MAX_PACKETS", MAX_PACKETS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0 ||
        PyModule_AddIntConstant(m, "SEQ_OFFSET", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
