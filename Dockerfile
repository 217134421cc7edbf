# FCN and Caffe models without building Caffe: the toolkit on a slim Python.
#
#   docker build -t fcn-npcaffe .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/out:/out" fcn-npcaffe demo --out /out/demo
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/out:/out" fcn-npcaffe solve --solver ... --out /out/run
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/out:/out" fcn-npcaffe infer --deploy ... --out /out/seg IMAGES
#
# Verbs (docker/entrypoint.sh, each the `fcn` command's verb): solve, infer, nets, demo, surgery,
# score, labels, get-data, test; anything else runs as a command (e.g. bash). Volumes: /data
# (datasets, weights; read) and /out (what the tools write; also the working directory). Any
# uid may run it (--user): HOME and the caches are writable for everyone. `docker stop` sends
# SIGTERM, on which training snapshots and stops (give it time: docker stop -t 60).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FCN_HOME=/opt/fcn \
    HOME=/home/fcn \
    XDG_CACHE_HOME=/home/fcn/.cache

# the dependencies in a layer of their own, at the versions the tests passed with, so that an
# edit of the source rebuilds in seconds
WORKDIR /opt/fcn
COPY pyproject.toml /opt/fcn/
COPY docker/requirements.py docker/constraints.txt /opt/fcn/docker/
RUN python docker/requirements.py test > /tmp/requirements.txt \
    && pip install -c docker/constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# the source, and the README's install command (the dependencies are there already)
COPY . /opt/fcn
RUN pip install -c docker/constraints.txt -e '.[test]' \
    && mkdir -p /home/fcn/.cache /out /data \
    && chmod 1777 /home/fcn /home/fcn/.cache /out

VOLUME ["/data", "/out"]
WORKDIR /out
ENTRYPOINT ["/bin/sh", "/opt/fcn/docker/entrypoint.sh"]
CMD ["help"]
