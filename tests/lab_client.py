"""A stand-in for the original lab's c_client.py, written from its documented behaviour.

Usage: python3 lab_client.py SERVER_IP PORT
Connects over TCP/IPv4, prints every chunk the server sends as it arrives, and sends each line
typed on standard input exactly as typed (ending in a newline). The tests run it unchanged
against charla to prove the original client still works.
"""
import socket
import sys
import threading


def receive(sock):
    while True:
        data = sock.recv(1024)
        if not data:
            break
        print(data.decode(errors="replace"), flush=True)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    threading.Thread(target=receive, args=(sock,), daemon=True).start()
    for line in sys.stdin:
        sock.send(line.encode())
    sock.close()


if __name__ == "__main__":
    main()
