/* queue_layout.h - the directories inside queue_directory that smtpd and
 * qmgr share (both run there, chrooted or not, as mail_owner).
 *
 * content/ID  a message's content, written and fsynced by smtpd before
 *             it asks qmgr to queue ID; removed (or recycled) by qmgr.
 * spare/NAME  emptied content files of delivered messages, waiting to be
 *             renamed to content/ID by smtpd for a new message. Creating
 *             a file is the expensive part of queueing on some file
 *             systems (ext4 without a journal passes over every recently
 *             freed inode); a rename is not. qmgr's sweep trims it.
 */
#ifndef YB_QUEUE_LAYOUT_H
#define YB_QUEUE_LAYOUT_H

#define QUEUE_CONTENT_DIR "content"
#define QUEUE_SPARE_DIR "spare"
#define QUEUE_SPARE_KEEP 1000 /* spare files the sweep leaves */

#endif
