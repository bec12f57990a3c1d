"""The media library as the service serves it: a caller's images, videos, edits and
uploads (source images) — get, list, change, soft-delete and read their stored files —
and the upload of source images. :class:`GalleryMixin` of
:class:`serve_apps.media.service.MediaService`."""

from __future__ import annotations

import asyncio
from typing import Any

from catalog import schemas as s
from catalog import storage as shared_storage
from catalog.errors import NotFound
from catalog.port import apply_update
from catalog.tables import new_id, utcnow
from serve_apps.auth import Principal, check_readable, owner_filter
from serve_apps.media.schemas import EditResult, ImageResult, VideoResult
from serve_apps.media.state import MediaState
from serve_apps.media.uploads import inspect_image, save_upload


class GalleryMixin(MediaState):
    """Reads and changes of the rows the caller owns (or may see, when public)."""

    async def get_image(self, image_id: str, who: Principal) -> ImageResult:
        """An image the caller may read (theirs, or public) and its prediction. Raises
        NotFound (also once deleted), PermissionDenied."""
        image = await self._live(self.cat.images, image_id, who, public_ok=True)
        return ImageResult(image=image, prediction=await self._linked(image.prediction_id))

    async def get_video(self, video_id: str, who: Principal) -> VideoResult:
        """A video the caller may read (theirs, or public) and its prediction. Raises
        NotFound (also once deleted), PermissionDenied."""
        video = await self._live(self.cat.videos, video_id, who, public_ok=True)
        return VideoResult(video=video, prediction=await self._linked(video.prediction_id))

    async def list_images(self, who: Principal, **filters: Any) -> s.Page[s.Image]:
        """The caller's live images (admins: everyone's), newest first; ``filters`` are
        :meth:`_list_filters`'. Raises NotFound (unknown project), InvalidArgument."""
        return await self.cat.images.list(**await self._list_filters(who, filters))

    async def list_videos(self, who: Principal, **filters: Any) -> s.Page[s.Video]:
        """The caller's live videos, like :meth:`list_images`."""
        return await self.cat.videos.list(**await self._list_filters(who, filters))

    async def list_edits(self, who: Principal, *, image_id: str | None = None,
                         kind: str | None = None, page_size: int = 50,
                         cursor: str | None = None) -> s.Page[s.ImageEdit]:
        """The caller's live edits and upscales, newest first; ``image_id`` narrows to
        one image's (``img_...``) or one upload's (``src_...``)."""
        upload = bool(image_id and image_id.startswith("src_"))
        return await self.cat.image_edits.list(
            page_size=page_size, cursor=cursor, kind=kind, user_id=owner_filter(who),
            image_id=None if upload else image_id, source_image_id=image_id if upload else None)

    async def get_edit(self, edit_id: str, who: Principal) -> EditResult:
        """An edit of the caller's and its prediction. Raises NotFound, PermissionDenied."""
        edit = await self._live(self.cat.image_edits, edit_id, who)
        return EditResult(edit=edit, prediction=await self._linked(edit.prediction_id))

    async def update_image(self, image_id: str, change: s.MediaUpdate,
                           who: Principal) -> s.Image:
        """Change an image's title, caption, alt text, public or favourite flag (owner
        only). Raises NotFound, PermissionDenied."""
        return await apply_update(self.cat.images,
                                  await self._live(self.cat.images, image_id, who), change)

    async def update_video(self, video_id: str, change: s.MediaUpdate,
                           who: Principal) -> s.Video:
        """Change a video's metadata, like :meth:`update_image`."""
        return await apply_update(self.cat.videos,
                                  await self._live(self.cat.videos, video_id, who), change)

    async def delete_media(self, kind: str, row_id: str, who: Principal) -> None:
        """Soft-delete one of the caller's images, videos, edits or uploads (``kind``:
        the table name): it leaves lists and gets at once; its files stay until the
        retention purge (``MediaConfig.retention_days``). Raises NotFound,
        PermissionDenied."""
        repo = self._media_repos()[kind]
        await self._live(repo, row_id, who)
        await repo.update(row_id, deleted_at=utcnow())

    async def upload_source_image(self, data: bytes, meta: s.SourceImageMeta,
                                  who: Principal) -> s.SourceImage:
        """Store an uploaded image: its type, size and dimensions read from the bytes
        (:func:`serve_apps.media.uploads.inspect_image`), a thumbnail made, both written
        under the media root, then the row. Raises InvalidArgument (field ``file``)."""
        info = await asyncio.to_thread(inspect_image, data,
                                       max_bytes=self.config.max_upload_bytes)
        upload_id = new_id("src")
        path, thumbnail_path = await save_upload(self.outputs.root, upload_id, data, info)
        return await self.cat.source_images.create(s.SourceImageCreate(
            **meta.model_dump(), path=path, thumbnail_path=thumbnail_path, format=info.format,
            mime_type=info.mime_type, size_bytes=info.size_bytes, width=info.width,
            height=info.height, user_id=who.user_id,
        ), id=upload_id)

    async def list_source_images(self, who: Principal, *, purpose: str | None = None,
                                 tag: str | None = None, page_size: int = 50,
                                 cursor: str | None = None) -> s.Page[s.SourceImage]:
        """The caller's live uploads (admins: everyone's), newest first."""
        return await self.cat.source_images.list(
            page_size=page_size, cursor=cursor, purpose=purpose, tag=tag,
            user_id=owner_filter(who))

    async def get_source_image(self, source_id: str, who: Principal) -> s.SourceImage:
        """An upload the caller may read (theirs, or public). Raises NotFound, 403."""
        return await self._live(self.cat.source_images, source_id, who, public_ok=True)

    async def update_source_image(self, source_id: str, change: s.SourceImageUpdate,
                                  who: Principal) -> s.SourceImage:
        """Change an upload's title, description, purpose or public flag (owner only)."""
        return await apply_update(self.cat.source_images,
                                  await self._live(self.cat.source_images, source_id, who),
                                  change)

    async def content(self, kind: str, row_id: str, who: Principal, *, index: int = 0,
                      thumbnail: bool = False) -> tuple[bytes, str]:
        """The bytes and MIME type of a stored file: an upload (or its thumbnail), or
        the ``index``-th file of an image, edit or video (or a video's thumbnail).
        Raises NotFound (no such file, or purged), PermissionDenied."""
        repo = self._media_repos()[kind]
        row = await self._live(repo, row_id, who, public_ok=kind != "image_edits")
        if isinstance(row, s.SourceImage):
            path, mime = ((row.thumbnail_path, "image/webp") if thumbnail
                          else (row.path, row.mime_type))
            if row.purged_at is not None or path is None:
                raise NotFound(f"{row_id} has no stored file any more", field="id")
        else:
            stored = row.thumbnail if thumbnail and isinstance(row, s.Video) else (
                row.files[index] if 0 <= index < len(row.files) else None)
            if stored is None:
                raise NotFound(f"{row_id} has no file {index}", field="index")
            path, mime = stored.path, stored.mime_type
        return await asyncio.to_thread(shared_storage.read_bytes, path), mime

    async def _linked(self, prediction_id: str | None) -> s.Prediction:
        """The prediction a row links. Raises NotFound when it links none."""
        if prediction_id is None:
            raise NotFound("no prediction is linked to this row", field="prediction_id")
        return await self.cat.predictions.get(prediction_id)

    def _media_repos(self) -> dict[str, Any]:
        return {"images": self.cat.images, "videos": self.cat.videos,
                "image_edits": self.cat.image_edits, "source_images": self.cat.source_images}

    async def _list_filters(self, who: Principal, filters: dict[str, Any]) -> dict[str, Any]:
        """Catalog list arguments from a route's: ``status`` (of the linked prediction),
        ``project`` (id or slug, visible to the caller), ``favorite``; owner filter."""
        out = dict(filters)
        out["prediction_status"] = out.pop("status", None)
        out["is_favorite"] = out.pop("favorite", None)
        project = out.pop("project", None)
        if project is not None:
            found = await self.cat.find_project(project)
            check_readable(who, found.user_id, found.is_published)
            out["project_id"] = found.id
        out["user_id"] = owner_filter(who)
        return out
