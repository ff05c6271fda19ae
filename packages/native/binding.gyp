{
  "targets": [
    {
      "target_name": "osvb_native",
      "sources": ["src/copy.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
