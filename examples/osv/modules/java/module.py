# Stub of OSv's `java` module. The real one picks a JDK from the host (it runs
# `javac -version`) and requires java-base plus a JRE module; this stub only
# keeps the dependency on java-base so that run_java() works without a JDK.
from osv.modules import api

api.require('java-base')
