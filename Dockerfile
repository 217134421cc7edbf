# FCN and Caffe models without building Caffe: the toolkit on a slim Python.
#
#   docker build -t fcn-npcaffe .
#   docker run --rm -v "$PWD/out:/out" fcn-npcaffe demo --out /out/demo
#   docker run --rm -v "$PWD/out:/out" fcn-npcaffe nets fcn8s --classes 21 --out /out/voc-fcn8s
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/out:/out" fcn-npcaffe solve --solver ... --out /out/run
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/out:/out" fcn-npcaffe infer --deploy ... --out /out/seg IMAGES
#
# Verbs (docker/entrypoint.sh, each the `fcn` command's verb): solve, infer, nets, demo, surgery,
# score, labels, get-data, test; anything else runs as a command (e.g. bash). Volumes: /data (datasets, weights; read)
# and /out (what the tools write; also the working directory).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FCN_HOME=/opt/fcn

WORKDIR /opt/fcn
COPY . /opt/fcn
# the README's install command
RUN pip install -e '.[test]'

VOLUME ["/data", "/out"]
WORKDIR /out
ENTRYPOINT ["/bin/sh", "/opt/fcn/docker/entrypoint.sh"]
CMD ["help"]
