import hashlib
import http.client
import os
import socket
import sqlite3
import subprocess
import threading
import urllib.request
from pathlib import Path

import bcrypt
import psycopg2
import pymysql
import requests
from fastapi import FastAPI

app = FastAPI()
LOCK = threading.Lock()


@app.get("/io")
async def every_io_wait():
    requests.get("https://example.org")
    urllib.request.urlopen("https://example.org")
    http.client.HTTPConnection("example.org").request("GET", "/")
    sqlite3.connect("db.sqlite")
    psycopg2.connect("dbname=x")
    pymysql.connect(host="db")
    open("data.txt")
    Path("data.txt").read_text()
    os.remove("data.txt")
    subprocess.run(["true"])
    os.system("true")
    os.wait()
    socket.create_connection(("example.org", 80))
    input()
    LOCK.acquire()


@app.get("/cpu")
async def every_cpu_hog(password: bytes):
    hashlib.pbkdf2_hmac("sha256", password, b"salt", 100_000)
    bcrypt.hashpw(password, bcrypt.gensalt())
