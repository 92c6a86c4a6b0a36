FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt requirements-dev.txt pyproject.toml setup.py README.md ./
COPY gameserver ./gameserver
# `pip install .` runs setup.py, which compiles the Cython core into the wheel.
RUN pip install --no-cache-dir -r requirements.txt cython==3.3.1 setuptools==84.2.1 wheel==0.48.0 \
 && pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim
COPY --from=build /usr/local/lib/python3.11/site-packages /usr/local/lib/python3.11/site-packages
COPY --from=build /usr/local/bin/gameserver /usr/local/bin/gameserver
COPY scripts /srv/scripts
VOLUME /data
EXPOSE 8787
# The built-in scripts sit beside the package in a checkout; in the image they live in /srv/scripts.
ENTRYPOINT ["gameserver", "--data-dir", "/data", "--scripts-dir", "/srv/scripts"]
CMD ["--tick-rate", "64"]
